#ifndef SCION_CGRAPHVIZ_SHIM_H
#define SCION_CGRAPHVIZ_SHIM_H
// Graphviz's layout and rendering library (libgvc) and its graph library (libcgraph). Neither is
// thread-safe: Scion's GraphvizRenderer serializes every call.
#include <graphviz/gvc.h>
#include <graphviz/cgraph.h>

// Agdirected is a global variable: Swift 6 refuses to read one; this reads it in C.
static inline Agdesc_t scion_directed_graph(void) { return Agdirected; }
#endif
