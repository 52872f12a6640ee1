/* version.h - program name and version, printed by `icicle --version`. */
#ifndef ICICLE_VERSION_H
#define ICICLE_VERSION_H

#define ICICLE_NAME "icicle"
#define ICICLE_VERSION "1.2.0"
#define ICICLE_TAGLINE "a small C project, compiled from a tree that thaw serves lazily"

#endif
