# The schema registry client (tests/integration/it_registry.c, registered
# by the it_*.c glob) runs against a real registry, the `registry` fixture
# of tests/infra/fixtures.cmake (tools/schema-registry: Apicurio Registry),
# instead of Kafka and Redis. It makes a raw libcurl request of its own.
target_link_libraries(it_registry PRIVATE PkgConfig::LIBCURL)
set_tests_properties(integration.it_registry PROPERTIES
  FIXTURES_REQUIRED registry TIMEOUT 120
  ENVIRONMENT "${LEV_TEST_ENV};LEV_SCHEMA_REGISTRY_URL=${LEV_TEST_SCHEMA_REGISTRY_URL}")
