"""Scale: `embedding` (embedding large collections, or the detections of many videos, on Ray Data or in-process,
sharded and resumable), `verification` (a collection's candidate pairs verified on Ray).
"""
