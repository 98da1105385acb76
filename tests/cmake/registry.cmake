# The schema registry client (tests/integration/it_registry.c, registered
# by the it_*.c glob) runs against a real registry, the `registry` fixture
# of tests/infra/fixtures.cmake (tools/schema-registry: Apicurio Registry);
# one case runs a worker, against Kafka and Redis, with a registry of the
# test's own. It makes a raw libcurl request of its own.
target_link_libraries(it_registry PRIVATE PkgConfig::LIBCURL)
set_tests_properties(integration.it_registry PROPERTIES
  FIXTURES_REQUIRED "kafka;redis;registry" TIMEOUT 180
  ENVIRONMENT "${LEV_TEST_ENV};KAFKA_BOOTSTRAP=${LEV_TEST_KAFKA_BOOTSTRAP};REDIS_URL=${LEV_TEST_REDIS_URL};LEV_SCHEMA_REGISTRY_URL=${LEV_TEST_SCHEMA_REGISTRY_URL}")
