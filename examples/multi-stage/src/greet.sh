#!/bin/sh
# greet NAME: says hello, with the version the builder stamped in.
echo "hello, ${1:-world} (greet @VERSION@)"
