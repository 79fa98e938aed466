"""`aiaic-app`: a local web page (and a plain HTTP endpoint) that colourizes photos and films with sound.

`server` builds the FastAPI application and serves it with uvicorn; `routes` holds its HTTP routes;
`jobs` is the queue (one worker thread, jobs run in order, progress and cancel); `work` colours one
job through the same functions as `aiaic-colorize`; `uploads` checks what a user dropped; `static/`
is the page (no CDN, no fonts). Needs the optional extra: `pip install aiaic[app]`.
"""
