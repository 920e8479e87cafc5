"""All Redis access: key names (keys.py), clients (redis.py) and one typed store per concept."""
