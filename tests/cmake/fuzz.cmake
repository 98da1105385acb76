# libFuzzer targets, built when LEV_FUZZ is ON: the decode path
# (tests/fuzz/fuzz_decode.c) and JSON text to Avro (tests/fuzz/fuzz_json_encode.c).
# They are compiled by clang directly, from the library sources, with
# -fsanitize=fuzzer,address,undefined, whatever the project's compiler.
# unit.fuzz_decode_short runs the first for 30 s over tests/fuzz/corpus,
# unit.fuzz_json_encode_short the second for 20 s over tests/fuzz/corpus_json.
if(NOT LEV_FUZZ)
  return()
endif()

find_program(LEV_CLANG NAMES clang clang-16 clang-15 clang-14)
if(NOT LEV_CLANG)
  message(WARNING "LEV_FUZZ is ON but clang was not found: no fuzz target")
  add_test(NAME unit.fuzz_decode_short
    COMMAND ${CMAKE_COMMAND} -E echo "FAIL: LEV_FUZZ needs clang; run tools/deps")
  set_tests_properties(unit.fuzz_decode_short PROPERTIES LABELS unit
    FAIL_REGULAR_EXPRESSION "FAIL")
  return()
endif()

file(GLOB LEV_FUZZ_LIB_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/libevents/src/*.c)
file(GLOB LEV_FUZZ_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/libevents/src/*.h
  ${PROJECT_SOURCE_DIR}/libevents/include/*.h ${PROJECT_SOURCE_DIR}/libevents/include/libevents/*.h)

list(TRANSFORM LEV_DATADIR_DEFINITIONS PREPEND "-D" OUTPUT_VARIABLE LEV_FUZZ_DATADIR_FLAGS)
set(LEV_FUZZ_FLAGS -g -O1 -std=c11 -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=all -fno-omit-frame-pointer
  -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DLEV_BUILDING
  ${LEV_FUZZ_DATADIR_FLAGS}
  "-DLEV_FUZZ_SOURCE_DIR=\"${PROJECT_SOURCE_DIR}\""
  -I${PROJECT_SOURCE_DIR}/libevents/include -I${LEV_GENERATED_INCLUDE_DIR}
  -I${PROJECT_SOURCE_DIR}/libevents/src)
set(LEV_FUZZ_LIBS)
foreach(p RDKAFKA AVRO JANSSON HIREDIS LIBCURL LIBCRYPTO MICROHTTPD)
  foreach(d ${${p}_INCLUDE_DIRS})
    list(APPEND LEV_FUZZ_FLAGS -I${d})
  endforeach()
  list(APPEND LEV_FUZZ_FLAGS ${${p}_CFLAGS_OTHER})
  list(APPEND LEV_FUZZ_LIBS ${${p}_LINK_LIBRARIES})
endforeach()

# The library's sources, instrumented once (fuzzer-no-link), for every target.
set(LEV_FUZZ_OBJ_DIR ${CMAKE_CURRENT_BINARY_DIR}/fuzz-objs)
set(LEV_FUZZ_LIB ${CMAKE_CURRENT_BINARY_DIR}/libevents_fuzz.a)
file(MAKE_DIRECTORY ${LEV_FUZZ_OBJ_DIR})
set(LEV_FUZZ_LIB_FLAGS ${LEV_FUZZ_FLAGS})
list(TRANSFORM LEV_FUZZ_LIB_FLAGS REPLACE "^-fsanitize=fuzzer," "-fsanitize=fuzzer-no-link,")
set(LEV_FUZZ_OBJS)
foreach(src ${LEV_FUZZ_LIB_SOURCES})
  get_filename_component(n ${src} NAME_WE)
  list(APPEND LEV_FUZZ_OBJS ${LEV_FUZZ_OBJ_DIR}/${n}.o)
endforeach()
add_custom_command(OUTPUT ${LEV_FUZZ_LIB}
  COMMAND ${CMAKE_COMMAND} -E rm -f ${LEV_FUZZ_LIB}
  COMMAND ${LEV_CLANG} ${LEV_FUZZ_LIB_FLAGS} -c ${LEV_FUZZ_LIB_SOURCES}
  COMMAND ${CMAKE_AR} rcs ${LEV_FUZZ_LIB} ${LEV_FUZZ_OBJS}
  WORKING_DIRECTORY ${LEV_FUZZ_OBJ_DIR}
  DEPENDS ${LEV_FUZZ_LIB_SOURCES} ${LEV_FUZZ_HEADERS}
  COMMENT "Building libevents for the libFuzzer targets with ${LEV_CLANG}"
  COMMAND_EXPAND_LISTS VERBATIM)
add_custom_target(fuzz_lib DEPENDS ${LEV_FUZZ_LIB})

# New inputs go to a directory of the build; the seed corpora stay read-only.
set(LEV_FUZZ_ARTIFACTS ${CMAKE_CURRENT_BINARY_DIR}/fuzz-artifacts)
file(MAKE_DIRECTORY ${LEV_FUZZ_ARTIFACTS})

# lev_fuzz_target(<name> <seed corpus dir> <seconds>): tests/fuzz/<name>.c,
# and unit.<name>_short running it that long over the seeds.
function(lev_fuzz_target name seeds seconds)
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/${name})
  add_custom_command(OUTPUT ${bin}
    COMMAND ${LEV_CLANG} ${LEV_FUZZ_FLAGS} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${name}.c
            ${LEV_FUZZ_LIB} ${LEV_FUZZ_LIBS} -lpthread -lm -o ${bin}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${name}.c ${LEV_FUZZ_LIB} ${LEV_FUZZ_HEADERS}
    COMMENT "Building the libFuzzer target ${name} with ${LEV_CLANG}"
    COMMAND_EXPAND_LISTS VERBATIM)
  add_custom_target(${name} ALL DEPENDS ${bin})
  add_dependencies(${name} fuzz_lib)
  set(run ${CMAKE_CURRENT_BINARY_DIR}/${name}-corpus-run)
  file(MAKE_DIRECTORY ${run})
  add_test(NAME unit.${name}_short
    COMMAND ${bin} -max_total_time=${seconds} -rss_limit_mb=512 -timeout=10
            -print_final_stats=1 -artifact_prefix=${LEV_FUZZ_ARTIFACTS}/ ${run} ${seeds})
  set_tests_properties(unit.${name}_short PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

lev_fuzz_target(fuzz_decode ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus 30)
lev_fuzz_target(fuzz_json_encode ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus_json 20)
