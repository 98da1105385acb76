# The build installs, and a program outside the tree links against it.
# (Not in sanitizer builds: the out-of-tree program is built without them.)
if(LEV_SANITIZE)
  return()
endif()
add_test(NAME unit.install_and_link_out_of_tree
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install/check_install.sh ${PROJECT_BINARY_DIR})
set_tests_properties(unit.install_and_link_out_of_tree PROPERTIES LABELS unit TIMEOUT 300)
