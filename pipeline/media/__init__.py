"""Raw media in, clips and records out: the part of the build that prediction shares.

Nothing in this package imports Apache Beam, so predicting on a raw file or serving
the upload page never loads it. The Beam graph (``pipeline.transforms``) wraps these
functions in DoFns; ``trainers.predict`` calls them directly.

    files      local paths directly; remote ones (gs://, s3://) through a backend
    formats    which file names are videos, images, OpenPose frames
    items      what travels: Item (one input), Problem, Clip, MediaError
    sampling   which frames become the clip (uniform, stride, segments, indices, all@fps)
    encode     crop, resize and encode one kept frame
    video      one video reader and one timing rule; decode_video
    frames     frame folders and single images
    keypoints  OpenPose JSON: reading, person selection, keypoint records
    records    BuildSettings and the per-item record making
    heap       frame buffers from the heap in a worker (glibc's malloc thresholds)
    streams    live frame streams and sliding windows
"""
