# fastcnn._ext: conv kernels (filled in by the conv work)
