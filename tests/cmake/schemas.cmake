# The schema evolution rule (tests/schemas/check_evolution.sh): every
# schemas/*.avsc stays compatible both ways with every version of it
# committed before.
# unit.schemas_evolution checks the repository's own history with evctl's
# `schemas check`; it is skipped (exit 77), never passed, when git or the
# full history is missing (not a checkout, a shallow clone).
# unit.schemas_evolution_check_fails proves the check fails on incompatible
# changes, in throw-away repositories built from tests/data/avro/compat/.
find_program(LEV_BASH NAMES bash)
if(TARGET evctl AND LEV_BASH)
  add_test(NAME unit.schemas_evolution
    COMMAND ${LEV_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/schemas/check_evolution.sh
            --evctl $<TARGET_FILE:evctl> --repo ${PROJECT_SOURCE_DIR})
  add_test(NAME unit.schemas_evolution_check_fails
    COMMAND ${LEV_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/schemas/check_evolution_test.sh
            --evctl $<TARGET_FILE:evctl>
            --fixtures ${CMAKE_CURRENT_SOURCE_DIR}/data/avro/compat/evolution)
  set_tests_properties(unit.schemas_evolution unit.schemas_evolution_check_fails PROPERTIES
    LABELS unit TIMEOUT 300 SKIP_RETURN_CODE 77 ENVIRONMENT "${LEV_TEST_ENV}")
else()
  # No evctl or no bash: the test exists and fails, saying why.
  add_test(NAME unit.schemas_evolution
    COMMAND ${CMAKE_COMMAND} -E echo "FAIL: the evolution check needs bash and evctl")
  set_tests_properties(unit.schemas_evolution PROPERTIES LABELS unit
    FAIL_REGULAR_EXPRESSION "FAIL")
endif()
