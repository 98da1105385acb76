# Codec cross-checks: libevents' canonical forms, fingerprints and encodings
# against fastavro, for every schema of schemas/ and tests/data/avro/.
add_executable(lev_canon ${CMAKE_CURRENT_SOURCE_DIR}/tools/lev_canon.c)
target_link_libraries(lev_canon PRIVATE levents_static lev_flags)

find_program(LEV_PYTHON3 NAMES python3)
if(LEV_PYTHON3)
  # The script finds an interpreter with fastavro itself (Debian's
  # python3-fastavro or the venv tools/deps makes) and fails when none has it.
  add_test(NAME unit.codec_fastavro_crosscheck
    COMMAND ${LEV_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/tools/fastavro_check.py
            --lev-canon $<TARGET_FILE:lev_canon>
            ${PROJECT_SOURCE_DIR}/schemas ${CMAKE_CURRENT_SOURCE_DIR}/data/avro)
else()
  # No Python at all: the test exists and fails, saying why.
  add_test(NAME unit.codec_fastavro_crosscheck
    COMMAND ${CMAKE_COMMAND} -E echo "FAIL: python3 not found; run tools/deps")
  set_tests_properties(unit.codec_fastavro_crosscheck PROPERTIES FAIL_REGULAR_EXPRESSION "FAIL")
endif()
set_tests_properties(unit.codec_fastavro_crosscheck PROPERTIES LABELS unit TIMEOUT 300
  ENVIRONMENT "${LEV_TEST_ENV}")
