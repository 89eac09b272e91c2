//! `.dockerignore` patterns. (Being written: see the shell task.)
