"""`facemend serve`: a local web page and a JSON endpoint that restore uploaded photos (`app.create_app`)."""
