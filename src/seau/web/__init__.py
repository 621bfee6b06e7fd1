"""The web page: a static client of the JSON API, shipped inside the package."""
