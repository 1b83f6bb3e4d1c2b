"""The web UI: rendering, the page, serving. The only package that imports gradio."""
