# Watching the workers: their HTTP endpoint (/metrics, /healthz, /readyz)
# against the real broker and Redis, one ctest per case of
# tests/integration/http_probes.c (named for what it proves), the committed
# Prometheus and Grafana files, and Prometheus scraping the three services
# (workflow_e2e prometheus, in services.cmake).
add_executable(it_http ${CMAKE_CURRENT_SOURCE_DIR}/integration/http_probes.c)
target_link_libraries(it_http PRIVATE lev_testutil lev_flags)
# /metrics follows the worker and passes `promtool check metrics`; 404/405.
lev_integration_test(it_http.metrics
  COMMAND it_http metrics_move_as_events_are_handled_and_pass_promtool TIMEOUT 300)
# /readyz 503 while Redis is down, 200 after; /healthz stays 200.
lev_integration_test(it_http.readyz
  COMMAND it_http readyz_503_while_redis_is_down_200_after_healthz_stays_200 TIMEOUT 300)
# /readyz 503 while the broker (librdkafka's mock cluster) is down, 200 after.
lev_integration_test(it_http.readyz_broker
  COMMAND it_http readyz_503_while_the_broker_is_down_200_after TIMEOUT 300)
# /healthz 503 while a handler holds the loop past LEV_HEALTH_STALL_MS.
lev_integration_test(it_http.healthz
  COMMAND it_http healthz_503_while_a_handler_holds_the_loop_past_the_bound TIMEOUT 300)

# The committed Prometheus configurations and Grafana dashboard, without a
# server: promtool check config, the dashboard's shape, its metrics named in
# the README.
find_program(LEV_OBS_PROMTOOL promtool)
find_program(LEV_OBS_PYTHON3 NAMES python3)
if(LEV_OBS_PROMTOOL AND LEV_OBS_PYTHON3)
  add_test(NAME unit.observability.config
    COMMAND ${LEV_OBS_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/observability/check_config.py
            ${PROJECT_SOURCE_DIR} ${LEV_OBS_PROMTOOL})
else()
  add_test(NAME unit.observability.config
    COMMAND ${CMAKE_COMMAND} -E echo "FAIL: promtool or python3 is missing; run tools/deps")
  set_tests_properties(unit.observability.config PROPERTIES FAIL_REGULAR_EXPRESSION "FAIL")
endif()
set_tests_properties(unit.observability.config PROPERTIES LABELS unit TIMEOUT 120)
