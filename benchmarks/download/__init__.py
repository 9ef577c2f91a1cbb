"""Download benchmark: the client's cold download against a raw GET of the same S3 object, and a
warm ``load_adapter`` from the cache against a plain safetensors load plus the same injection."""
