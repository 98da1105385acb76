# The stack: compose.yaml and the Dockerfile (validated, and run under docker
# compose) and the native stack of tools/stack.

# compose.yaml against the Compose Specification's JSON schema
# (check-jsonschema from PyPI, installed once into the cache venv of
# tools/deps) and against the Dockerfile: every built service's program is
# built and installed by it. With a build of the plain (unsanitized)
# binaries, their shared libraries are checked against the runtime stage's
# packages as well.
set(_stack_compose_args "")
if(NOT LEV_SANITIZE)
  set(_stack_compose_args "${PROJECT_BINARY_DIR}")
endif()
add_test(NAME unit.stack.compose
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/stack/compose_check.sh ${_stack_compose_args})
set_tests_properties(unit.stack.compose PROPERTIES LABELS unit TIMEOUT 600)
unset(_stack_compose_args)

# tools/webhook-receiver.py: the signatures it accepts and refuses.
find_program(LEV_STACK_PYTHON3 NAMES python3)
if(LEV_STACK_PYTHON3)
  add_test(NAME unit.stack.webhook_receiver
           COMMAND ${LEV_STACK_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/stack/test_webhook_receiver.py)
  set_tests_properties(unit.stack.webhook_receiver PROPERTIES LABELS unit TIMEOUT 120)
endif()

# tools/stack up, demo, down with the binaries of this build (no rebuild:
# ctest runs from this directory), on its own run directory and free ports:
# it starts its own broker and Redis, not the kafka/redis fixtures. The
# timeout allows the first download of the Kafka jars.
if(TARGET order-service AND TARGET billing-service AND TARGET notification-service
   AND TARGET evctl)
  add_test(NAME integration.stack.demo COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/stack/stack_test.sh)
  set_tests_properties(integration.stack.demo PROPERTIES LABELS integration TIMEOUT 900
    ENVIRONMENT "LEV_BUILD_DIR=${PROJECT_BINARY_DIR};LEV_STACK_TEST_DIR=${PROJECT_BINARY_DIR}/test-stack")
endif()

# compose.yaml and the Dockerfile run under docker compose (label compose):
# tools/compose finds or starts a Docker engine and provides compose v2 and
# stand-ins for images no registry serves here; the project's image is
# built, brought up on ports of the test, the sample orders are published
# through compose, billing-service is SIGKILLed mid-run and restarted, and
# every order must end once and be notified once; down -v leaves nothing.
# The timeout allows a first run that builds compose v2 (about 8 minutes)
# and the Debian base image.
if(TARGET evctl)
  add_test(NAME integration.stack.compose_run
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/stack/compose_test.sh)
  set_tests_properties(integration.stack.compose_run PROPERTIES
    LABELS "integration;compose" TIMEOUT 2400 SKIP_RETURN_CODE 77
    ENVIRONMENT "LEV_BUILD_DIR=${PROJECT_BINARY_DIR};LEV_COMPOSE_TEST_DIR=${PROJECT_BINARY_DIR}/test-compose")
endif()

# TLS, SASL and ACLs: tools/kafka --sasl-ssl --acls on ports of the test;
# clients without security settings, with a wrong password, as an unknown
# user and without the CA are refused saying why; evctl acls gives each
# service only what topics.json says; a Redis ACL user per service sees only
# its own keys; the demo runs with a principal and a Redis user per
# service; no password is logged.
if(TARGET order-service AND TARGET billing-service AND TARGET notification-service
   AND TARGET evctl)
  add_test(NAME integration.stack.tls_sasl_acl
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/stack/security_test.sh)
  set_tests_properties(integration.stack.tls_sasl_acl PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "LEV_BUILD_DIR=${PROJECT_BINARY_DIR};LEV_SECURITY_TEST_DIR=${PROJECT_BINARY_DIR}/test-security")
endif()

# The Confluent wire format against a real schema registry (Apicurio, via
# tools/schema-registry) and Confluent's Python client: the demo, interop
# both ways, schema evolution through the registry, a registry outage (at
# start and mid-run: nothing lost, nothing dead-lettered) and hostile
# frames. Its own stack, registry included, on ports of the test.
if(TARGET order-service AND TARGET billing-service AND TARGET notification-service
   AND TARGET evctl)
  add_test(NAME integration.stack.schema_registry
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/stack/registry_test.sh)
  set_tests_properties(integration.stack.schema_registry PROPERTIES LABELS integration TIMEOUT 900
    ENVIRONMENT "LEV_BUILD_DIR=${PROJECT_BINARY_DIR};LEV_REGISTRY_TEST_DIR=${PROJECT_BINARY_DIR}/test-registry")
endif()
