"""``make bench``: the durable path under load, side by side with a bare-Sanic ceiling."""
