"""The REST routes, one router per resource, each route a thin call of one `ReidService` method: `kit` (what every
router shares: the service, token and rate-limit dependencies, upload reading, jobs), `matching` (embed, search,
identify, evidence), `individuals` (individuals, their images and thumbnails, calibration, export), `review_queue`
(proposals and decisions), `clip_uploads` (clips and crop-videos -> persistent IDs), `questions` (the served
discovery), `population_jobs` (its abundance, as a job) and `job_status` (jobs).
"""
