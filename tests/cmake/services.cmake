# The worker services (services/): their rules' unit tests link the rules
# libraries, and the end-to-end tests run the three service binaries against
# the real broker and Redis of the ctest fixtures.

foreach(svc order billing notification)
  if(TARGET test_${svc}_rules AND TARGET ${svc}_rules)
    target_link_libraries(test_${svc}_rules PRIVATE ${svc}_rules)
  endif()
endforeach()
