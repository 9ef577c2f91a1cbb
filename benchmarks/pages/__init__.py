"""Page benchmark: the web UI's main pages over a seeded Postgres catalogue (see __main__)."""
