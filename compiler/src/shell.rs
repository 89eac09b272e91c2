//! Shell-word expansion as BuildKit's shell lexer does it. (Being written: see the shell task.)
