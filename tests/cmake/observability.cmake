# Watching the workers: their HTTP endpoint (/metrics, /healthz, /readyz)
# against the real broker and Redis, one ctest per case of
# tests/integration/http_probes.c (named for what it proves), and
# Prometheus scraping the three services (workflow_e2e prometheus, in
# services.cmake).
add_executable(it_http ${CMAKE_CURRENT_SOURCE_DIR}/integration/http_probes.c)
target_link_libraries(it_http PRIVATE lev_testutil lev_flags)
# /metrics follows the worker and passes `promtool check metrics`; 404/405.
lev_integration_test(it_http.metrics
  COMMAND it_http metrics_move_as_events_are_handled_and_pass_promtool TIMEOUT 300)
# /readyz 503 while Redis is down, 200 after; /healthz stays 200.
lev_integration_test(it_http.readyz
  COMMAND it_http readyz_503_while_redis_is_down_200_after_healthz_stays_200 TIMEOUT 300)
# /healthz 503 while a handler holds the loop past LEV_HEALTH_STALL_MS.
lev_integration_test(it_http.healthz
  COMMAND it_http healthz_503_while_a_handler_holds_the_loop_past_the_bound TIMEOUT 300)
