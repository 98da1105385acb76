# Test infrastructure: a real Kafka broker and a real Redis for the
# integration tests, as CTest fixtures `kafka` and `redis`.
#
#   infra.kafka.start  (FIXTURES_SETUP kafka)    tools/kafka start
#   infra.kafka.stop   (FIXTURES_CLEANUP kafka)  tools/kafka stop --clean
#   infra.redis.start  (FIXTURES_SETUP redis)    tools/redis start
#   infra.redis.stop   (FIXTURES_CLEANUP redis)  tools/redis stop --clean
#
# A test that sets FIXTURES_REQUIRED "kafka;redis" makes CTest run the start
# tests before it and the stop tests after the last such test, also when it
# is selected alone (`ctest -R ...`, `ctest -L integration`).
#
# The servers' state lives in ${CMAKE_BINARY_DIR}/test-infra/{kafka,redis}
# and they listen on test ports (Kafka 39092, controller 39093; Redis 39379),
# so a test run never collides with a development stack on the default ports
# (19092 / 16379). The first start downloads the Kafka jars with Maven into
# ${XDG_CACHE_HOME:-$HOME/.cache}/libevents (TIMEOUT 600 allows for that).
#
# Variables for registering integration tests (put into each test's
# ENVIRONMENT as KAFKA_BOOTSTRAP and REDIS_URL):
#   LEV_TEST_KAFKA_BOOTSTRAP   default 127.0.0.1:39092
#   LEV_TEST_REDIS_URL         default redis://127.0.0.1:39379/0
#
# Using servers that already run elsewhere: configure with
# -DLEV_TEST_KAFKA_BOOTSTRAP=host:port and/or -DLEV_TEST_REDIS_URL=redis://...,
# or have KAFKA_BOOTSTRAP / REDIS_URL set in the environment when CMake
# configures (they then become the defaults). The start tests pass these
# values to tools/kafka and tools/redis as KAFKA_BOOTSTRAP / REDIS_URL: a
# server that answers is used and nothing is started (the stop tests then
# stop nothing); one that does not answer fails the start test. Setting
# KAFKA_BOOTSTRAP or REDIS_URL only when running ctest changes nothing, since
# the tests' ENVIRONMENT property overrides it.

set(LEV_TEST_KAFKA_PORT 39092 CACHE STRING "Port of the test Kafka broker (controller: +1)")
set(LEV_TEST_REDIS_PORT 39379 CACHE STRING "Port of the test Redis")
set(LEV_TEST_KAFKA_BOOTSTRAP "" CACHE STRING
    "Kafka for integration tests (empty: $KAFKA_BOOTSTRAP at configure time, else the test broker)")
set(LEV_TEST_REDIS_URL "" CACHE STRING
    "Redis for integration tests (empty: $REDIS_URL at configure time, else the test Redis)")

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
message(STATUS "Integration tests: KAFKA_BOOTSTRAP=${LEV_TEST_KAFKA_BOOTSTRAP} REDIS_URL=${LEV_TEST_REDIS_URL}")

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

unset(_lev_tools_dir)
unset(_lev_infra_dir)
