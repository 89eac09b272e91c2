//! Build checks (BuildKit's linter rules), reported as warnings by `kiln check`.
