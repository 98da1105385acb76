# The worker services (services/): their rules' unit tests link the rules
# libraries, and the end-to-end tests run the three service binaries against
# the real broker and Redis of the ctest fixtures.

foreach(svc order billing notification)
  if(TARGET test_${svc}_rules AND TARGET ${svc}_rules)
    target_link_libraries(test_${svc}_rules PRIVATE ${svc}_rules)
  endif()
endforeach()

# End to end: workflow_e2e drives the three services with a fake payment
# gateway and webhook receiver (workflow_http.py, Python standard library).
if(TARGET order-service AND TARGET billing-service AND TARGET notification-service)
  add_executable(workflow_e2e ${CMAKE_CURRENT_SOURCE_DIR}/integration/workflow_e2e.c)
  target_link_libraries(workflow_e2e PRIVATE lev_testutil lev_flags)
  add_dependencies(workflow_e2e order-service billing-service notification-service)
  set(_wf_args
    --order $<TARGET_FILE:order-service>
    --billing $<TARGET_FILE:billing-service>
    --notification $<TARGET_FILE:notification-service>
    --http ${CMAKE_CURRENT_SOURCE_DIR}/integration/workflow_http.py)
  # 1,000 orders (valid, invalid, declined) through gateway and webhook.
  lev_integration_test(workflow.steady COMMAND workflow_e2e steady ${_wf_args} TIMEOUT 400)
  # The same while each service is killed with SIGKILL and restarted.
  lev_integration_test(workflow.crash COMMAND workflow_e2e crash ${_wf_args} TIMEOUT 600)
  # The webhook down for 60 s and the gateway for 30 s while orders come in:
  # the circuit breakers hold them; nothing is dead-lettered; all drain.
  lev_integration_test(workflow.outage COMMAND workflow_e2e outage ${_wf_args} TIMEOUT 400)
  # A 3-node cluster of its own (tools/kafka-cluster): the broker leading
  # most partitions, then the active controller, killed with SIGKILL and
  # started again while 2,000 orders flow over a minute.
  # With evctl built, the orders around the first kill go through one
  # `evctl publish` running across it.
  set(_wf_failover_args --cluster ${PROJECT_SOURCE_DIR}/tools/kafka-cluster)
  if(TARGET evctl)
    list(APPEND _wf_failover_args --evctl $<TARGET_FILE:evctl>)
  endif()
  lev_integration_test(workflow.failover COMMAND workflow_e2e failover ${_wf_args}
    ${_wf_failover_args} TIMEOUT 900)
  # A second and a third instance of each service join and leave while
  # orders flow, with eager and with cooperative assignment.
  lev_integration_test(workflow.scale_eager COMMAND workflow_e2e scale-eager ${_wf_args}
    TIMEOUT 400)
  lev_integration_test(workflow.scale_cooperative COMMAND workflow_e2e scale-cooperative
    ${_wf_args} TIMEOUT 400)
  # A slow webhook and gateway: their requests run side by side.
  lev_integration_test(workflow.slow COMMAND workflow_e2e slow ${_wf_args} TIMEOUT 300)
  # The same OrderPlaced published twice changes nothing (ledger and sink file).
  lev_integration_test(workflow.duplicate COMMAND workflow_e2e duplicate ${_wf_args} TIMEOUT 300)
  # evctl against the running services: a replay of the processed orders
  # changes nothing (no charge, no notification); dead letters of orders the
  # gateway refused are redriven after the fix (dry run first) and confirmed.
  if(TARGET evctl)
    add_dependencies(workflow_e2e evctl)
    lev_integration_test(workflow.replay
      COMMAND workflow_e2e replay ${_wf_args} --evctl $<TARGET_FILE:evctl> TIMEOUT 300)
  endif()
  # Prometheus (Debian's package, tools/deps) scrapes the three services
  # during a run: the counters it sees equal the plan, every query of the
  # committed dashboard returns data, promtool accepts every /metrics.
  find_program(LEV_PROMETHEUS prometheus)
  find_program(LEV_PROMTOOL promtool)
  if(LEV_PROMETHEUS AND LEV_PROMTOOL)
    lev_integration_test(workflow.prometheus
      COMMAND workflow_e2e prometheus ${_wf_args} --prometheus ${LEV_PROMETHEUS}
              --promtool ${LEV_PROMTOOL}
              --dashboard ${PROJECT_SOURCE_DIR}/tools/observability/grafana-dashboard.json
      TIMEOUT 400)
  else()
    # never a silent skip: the test is there, and says what is missing
    add_test(NAME integration.workflow.prometheus
      COMMAND ${CMAKE_COMMAND} -E echo "FAIL: prometheus and promtool are missing; run tools/deps")
    set_tests_properties(integration.workflow.prometheus PROPERTIES LABELS integration
      FAIL_REGULAR_EXPRESSION "FAIL")
  endif()
  # Jaeger (built by tools/jaeger from the Go module proxy, cached under
  # ~/.cache) receives the three services' spans over OTLP/HTTP: one trace
  # per order, its spans from each service in parent/child order.
  lev_integration_test(workflow.jaeger
    COMMAND workflow_e2e jaeger ${_wf_args} --jaeger ${PROJECT_SOURCE_DIR}/tools/jaeger
    TIMEOUT 900)
  unset(_wf_args)
endif()
