# libFuzzer target over the decode path (tests/fuzz/fuzz_decode.c), built when
# LEV_FUZZ is ON. It is compiled by clang directly, from the library sources,
# with -fsanitize=fuzzer,address,undefined, whatever the project's compiler.
# unit.fuzz_decode_short runs it for 30 s over the seed corpus tests/fuzz/corpus.
if(NOT LEV_FUZZ)
  return()
endif()

find_program(LEV_CLANG NAMES clang clang-16 clang-15 clang-14)
if(NOT LEV_CLANG)
  message(WARNING "LEV_FUZZ is ON but clang was not found: no fuzz target")
  add_test(NAME unit.fuzz_decode_short
    COMMAND ${CMAKE_COMMAND} -E echo "FAIL: LEV_FUZZ needs clang; run tools/deps")
  set_tests_properties(unit.fuzz_decode_short PROPERTIES LABELS unit
    FAIL_REGULAR_EXPRESSION "FAIL")
  return()
endif()

file(GLOB LEV_FUZZ_LIB_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/libevents/src/*.c)
file(GLOB LEV_FUZZ_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/libevents/src/*.h
  ${PROJECT_SOURCE_DIR}/libevents/include/*.h ${PROJECT_SOURCE_DIR}/libevents/include/libevents/*.h)

list(TRANSFORM LEV_DATADIR_DEFINITIONS PREPEND "-D" OUTPUT_VARIABLE LEV_FUZZ_DATADIR_FLAGS)
set(LEV_FUZZ_FLAGS -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=all -fno-omit-frame-pointer
  -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DLEV_BUILDING
  ${LEV_FUZZ_DATADIR_FLAGS}
  "-DLEV_FUZZ_SOURCE_DIR=\"${PROJECT_SOURCE_DIR}\""
  -I${PROJECT_SOURCE_DIR}/libevents/include -I${LEV_GENERATED_INCLUDE_DIR}
  -I${PROJECT_SOURCE_DIR}/libevents/src)
set(LEV_FUZZ_LIBS)
foreach(p RDKAFKA AVRO JANSSON HIREDIS LIBCURL LIBCRYPTO MICROHTTPD)
  foreach(d ${${p}_INCLUDE_DIRS})
    list(APPEND LEV_FUZZ_FLAGS -I${d})
  endforeach()
  list(APPEND LEV_FUZZ_FLAGS ${${p}_CFLAGS_OTHER})
  list(APPEND LEV_FUZZ_LIBS ${${p}_LINK_LIBRARIES})
endforeach()

set(LEV_FUZZ_BIN ${CMAKE_CURRENT_BINARY_DIR}/fuzz_decode)
add_custom_command(OUTPUT ${LEV_FUZZ_BIN}
  COMMAND ${LEV_CLANG} ${LEV_FUZZ_FLAGS} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_decode.c
          ${LEV_FUZZ_LIB_SOURCES} ${LEV_FUZZ_LIBS} -lpthread -lm -o ${LEV_FUZZ_BIN}
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_decode.c ${LEV_FUZZ_LIB_SOURCES}
          ${LEV_FUZZ_HEADERS}
  COMMENT "Building the libFuzzer target fuzz_decode with ${LEV_CLANG}"
  COMMAND_EXPAND_LISTS VERBATIM)
add_custom_target(fuzz_decode ALL DEPENDS ${LEV_FUZZ_BIN})

# New inputs go to a directory of the build; the seed corpus stays read-only.
set(LEV_FUZZ_RUN_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus-run)
set(LEV_FUZZ_ARTIFACTS ${CMAKE_CURRENT_BINARY_DIR}/fuzz-artifacts)
file(MAKE_DIRECTORY ${LEV_FUZZ_RUN_CORPUS} ${LEV_FUZZ_ARTIFACTS})
add_test(NAME unit.fuzz_decode_short
  COMMAND ${LEV_FUZZ_BIN} -max_total_time=30 -rss_limit_mb=512 -timeout=10
          -print_final_stats=1 -artifact_prefix=${LEV_FUZZ_ARTIFACTS}/
          ${LEV_FUZZ_RUN_CORPUS} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus)
set_tests_properties(unit.fuzz_decode_short PROPERTIES LABELS unit TIMEOUT 120)
