# fastcnn._ext: optim kernels (filled in by the optim work)
