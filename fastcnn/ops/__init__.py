"""fastcnn.ops: one checked NumPy-facing function per C kernel.

Each function validates shapes once, converts float64 / non-contiguous input to
C-contiguous float32, allocates its outputs, and runs the kernel with the GIL released.
Anything impossible raises ValueError (or TypeError) naming the argument and what was
expected; nothing reaches C unchecked.
"""
from .gemm import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .nn import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from . import gemm as _gemm, conv as _conv, pool as _pool, nn as _nn, optim as _optim, data as _data
# bind the module before the star import rebinds the name ``merge`` to the function
from . import merge as _merge
from .merge import *  # noqa: F401,F403
from . import bound as _bound
from .bound import *  # noqa: F401,F403
from . import penalty as _penalty
from .penalty import *  # noqa: F401,F403
from . import image as _image
from .image import *  # noqa: F401,F403
from . import sync_norm as _sync_norm
from .sync_norm import *  # noqa: F401,F403
from . import layer_ops as _layer_ops
from .layer_ops import *  # noqa: F401,F403
from . import conv_transpose as _conv_transpose
from .conv_transpose import *  # noqa: F401,F403
from . import upsample as _upsample
from .upsample import *  # noqa: F401,F403
from . import activation as _activation
from .activation import *  # noqa: F401,F403
from . import depthwise as _depthwise
from .depthwise import *  # noqa: F401,F403

__all__ = (list(_gemm.__all__) + list(_conv.__all__) + list(_pool.__all__)
           + list(_nn.__all__) + list(_optim.__all__) + list(_data.__all__)
           + list(_merge.__all__) + list(_bound.__all__) + list(_penalty.__all__)
           + list(_sync_norm.__all__) + list(_image.__all__)
           + list(_layer_ops.__all__) + list(_activation.__all__))
__all__ += (list(_conv_transpose.__all__) + list(_upsample.__all__)
            + list(_depthwise.__all__))
