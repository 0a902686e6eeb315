"""What a shared app server runs beside the pages: background jobs, training slots and queue, warm-up,
uploads per session."""
