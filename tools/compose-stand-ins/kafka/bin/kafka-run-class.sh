#!/bin/sh
# kafka-run-class.sh CLASS ARGS...: a Kafka tool class on the image's jars.
exec java ${KAFKA_HEAP_OPTS_TOOLS:--Xmx256m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties \
  -cp '/opt/kafka/libs/*' "$@"
