# evctl's integration tests (tests/integration/it_evctl_*.c) run the built
# evctl as a child process: build it first.
foreach(t it_evctl_publish it_evctl_replay it_evctl_dlq it_evctl_ops it_evctl_schemas
          it_evctl_registry)
  if(TARGET ${t} AND TARGET evctl)
    add_dependencies(${t} evctl)
  endif()
endforeach()
if(TEST integration.it_evctl_dlq)
  set_tests_properties(integration.it_evctl_dlq PROPERTIES TIMEOUT 600)
endif()
# evctl and the schema registry (schemas register, schemas check --registry,
# publish --dry-run --wire confluent) run against the real registry of the
# `registry` fixture, and Kafka for publish.
if(TEST integration.it_evctl_registry)
  set_tests_properties(integration.it_evctl_registry PROPERTIES
    FIXTURES_REQUIRED "kafka;registry" TIMEOUT 300
    ENVIRONMENT "${LEV_TEST_ENV};KAFKA_BOOTSTRAP=${LEV_TEST_KAFKA_BOOTSTRAP};LEV_SCHEMA_REGISTRY_URL=${LEV_TEST_SCHEMA_REGISTRY_URL}")
endif()
