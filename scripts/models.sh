#!/usr/bin/env bash
# make models: nothing to build yet.
echo "models: no models to build yet"
