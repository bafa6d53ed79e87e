"""Per-video identification: frames and detections in, an identity per detection out (seed 000
self-supervised head, seed 001 IoU temporal positives), ready for the gallery's cross-video IDs."""
from .cluster import ClusterConfig, KEstimate, VideoClustering, cluster_descriptors, cooccurrence_score, estimate_k
from .color import color_histogram, color_histograms, with_color
from .crops import cluster_crops, extract_crop_archive, is_crop_table, read_crop_archive, read_crop_table
from .descriptors import compute_crop_descriptors, compute_descriptors, default_cache_dir, descriptor_key
from .detections import (FORMATS, box_iou, clean_detections, frame_groups, iou_links, iou_tracklets, read_detections,
                         read_tracks_csv)
from .frames import FrameSource, iter_frames, open_frames
from .head import HeadConfig, ProjectionHead, hungarian_pair_labels, train_head
from .kmeans import constrained_assign, kmeans
from .pipeline import cluster_video, load_video_detections
from .pseudo import augment, make_pseudo_video

__all__ = [
    "ClusterConfig", "KEstimate", "VideoClustering", "cluster_descriptors", "constrained_assign", "cooccurrence_score",
    "estimate_k", "kmeans", "color_histogram", "color_histograms", "with_color",
    "compute_descriptors", "compute_crop_descriptors", "default_cache_dir", "descriptor_key",
    "cluster_crops", "extract_crop_archive", "is_crop_table", "read_crop_archive", "read_crop_table",
    "FORMATS", "box_iou", "clean_detections", "frame_groups", "iou_links", "iou_tracklets", "read_detections",
    "FrameSource", "iter_frames", "open_frames",
    "HeadConfig", "ProjectionHead", "hungarian_pair_labels", "train_head",
    "cluster_video", "load_video_detections",
    "augment", "make_pseudo_video", "read_tracks_csv",
]

