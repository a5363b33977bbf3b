// The Python module vkdnw_fast._C. It defines nothing itself: importing it loads this library,
// whose static initialisers register the vkdnw_fast operators with the dispatcher.

#include <Python.h>

PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
