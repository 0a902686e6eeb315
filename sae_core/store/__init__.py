"""Models and runs on disk: export, safe import, the folder of kept runs."""
