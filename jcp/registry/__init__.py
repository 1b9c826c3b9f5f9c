"""The registry v2 API: manifest digests (HEAD) and the auth flows to ask for them."""
