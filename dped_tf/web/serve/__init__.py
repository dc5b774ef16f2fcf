"""The enhance page (`dped-tf serve`): upload a photo, get it back enhanced.

- `jobs`: the job queue (a job per upload, one worker thread, previews).
- `app`: the Starlette page and its upload, status and file routes.
"""
