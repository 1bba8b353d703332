"""The OpenAPI description of /api/: the NinjaAPI that routes every /api/ URL.

`api.py` declares each operation (parameters, request body, responses, who
may call it) and hands the request to the existing view, whose response goes
out unchanged; `schemas.py` holds the pydantic classes for every JSON shape.
django-ninja generates /api/schema/ and the docs page /api/docs/ from them.
"""
