# evctl's integration tests (tests/integration/it_evctl_*.c) run the built
# evctl as a child process: build it first.
foreach(t it_evctl_publish it_evctl_replay it_evctl_dlq it_evctl_ops it_evctl_schemas)
  if(TARGET ${t} AND TARGET evctl)
    add_dependencies(${t} evctl)
  endif()
endforeach()
if(TEST integration.it_evctl_dlq)
  set_tests_properties(integration.it_evctl_dlq PROPERTIES TIMEOUT 600)
endif()
