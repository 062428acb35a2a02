# vhdx_layer(NAME SOURCES... DEPS...): one static library per layer. Headers are included as
# "layer/file.h" relative to src/, public ones as "vhdx/file.h".
function(vhdx_layer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(vhdx_${name} STATIC ${ARG_SOURCES})
  target_include_directories(vhdx_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/include)
  target_link_libraries(vhdx_${name} PUBLIC ${ARG_DEPS})
endfunction()

# vhdx_test(NAME SOURCES... DEPS...): a GoogleTest binary registered with CTest, one CTest
# test per TEST(). Tests run from the build directory; VHDX_SOURCE_DIR and VHDX_BINARY_DIR
# are compiled in so tests can find the corpus and the CLI.
function(vhdx_test name)
  if(NOT VHDX_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    VHDX_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    VHDX_BINARY_DIR="${PROJECT_BINARY_DIR}")
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
endfunction()
