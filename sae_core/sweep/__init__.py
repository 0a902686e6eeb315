"""Grids of runs (rho x beta, optionally x a third axis) trained together, locally or on Ray."""
