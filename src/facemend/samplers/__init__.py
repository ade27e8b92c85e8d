"""Decoding algorithms with no network inside (like diffusers' schedulers): the method owns the loop."""
