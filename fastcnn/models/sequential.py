"""``Sequential``: a linear stack of layers, built as a functional graph once its input is
known (from ``Input``, an ``input_shape=`` argument, ``build`` or the first data seen)."""
from .. import layers as layers_module
from ..layers.base import Layer, _shape_str
from ..layers.core import InputLayer
from ..layers.node import KerasTensor
from ..training.trainer import Trainer
from .functional import Functional

__all__ = ["Sequential"]


class Sequential(Functional):
    """A linear stack of layers (``Sequential([...])`` or ``.add(layer)``).

    Args:
        layers: the layers in order; the first may be ``fastcnn.Input(shape=...)``.
        trainable: False freezes every layer.
        name: the model's name (default ``sequential``, ``sequential_1``, ...).
    """

    def __init__(self, layers=None, trainable=True, name=None):
        Layer.__init__(self, name=name, trainable=trainable)
        Trainer.__init__(self)
        self._graph_version = 0
        self._stack = []
        self._input_layer = None
        self.built = False
        if layers is not None:
            for layer in [layers] if isinstance(layers, Layer) else layers:
                self.add(layer)

    @property
    def layers(self):
        return list(self._stack)

    def add(self, layer):
        """Append a layer (or set the input with ``fastcnn.Input(shape=...)``)."""
        if isinstance(layer, KerasTensor) and isinstance(layer._keras_history[0], InputLayer):
            layer = layer._keras_history[0]
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError("Sequential model '%s': an Input / InputLayer can only be the "
                                 "first layer of the model (it already has %s)"
                                 % (self.name, "an input" if self._input_layer is not None
                                    else "layers"))
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError("Only instances of `fastcnn.layers.Layer` can be added to a "
                            "Sequential model. Received: %r (of type %s)"
                            % (layer, type(layer).__name__))
        if any(l.name == layer.name for l in self._stack):
            raise ValueError("All layers added to a Sequential model should have unique names. "
                             "Name '%s' is already the name of a layer in this model. Update "
                             "the `name` argument to pass a unique name." % layer.name)
        if not self._stack and self._input_layer is None and layer._input_shape_arg is not None:
            self._input_layer = InputLayer(shape=layer._input_shape_arg)
        self._stack.append(layer)
        if self._input_layer is not None:
            try:
                self._rebuild()
            except Exception:
                self._stack.pop()
                if self._stack:
                    self._rebuild()
                else:
                    self.built = False
                raise

    def pop(self):
        """Remove and return the last layer."""
        if not self._stack:
            raise TypeError("There are no layers in the model.")
        layer = self._stack.pop()
        if self._stack and self._input_layer is not None:
            self._rebuild()
        else:
            self.built = False
        return layer

    def _rebuild(self):
        x = self._input_layer.output
        for layer in self._stack:
            x = layer(x)
        self._init_graph(self._input_layer.output, x)

    def build(self, input_shape=None):
        """Create all weights for inputs of ``input_shape`` (batch dim included, may be None)."""
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("Sequential.build: you must provide an `input_shape` argument "
                                 "(e.g. model.build((None, 32, 32, 3))) or declare the input with "
                                 "layers.Input(shape=...) / input_shape= on the first layer")
        else:
            shape = tuple(input_shape)
            if len(shape) < 2:
                raise ValueError("Sequential.build: input_shape must include the batch "
                                 "dimension, e.g. (None, 32, 32, 3); got %r" % (input_shape,))
            if self._input_layer is None:
                self._input_layer = InputLayer(shape=shape[1:])
            elif tuple(shape[1:]) != self._input_layer.shape[1:]:
                raise ValueError("Sequential model '%s' expects inputs of shape %s, cannot build "
                                 "it for %s" % (self.name, _shape_str(self.input_shape),
                                                _shape_str((None,) + tuple(shape[1:]))))
        if not self._stack:
            raise ValueError("Sequential model '%s' has no layers to build" % self.name)
        self._rebuild()

    @property
    def input_shape(self):
        """The input shape, batch dimension ``None`` (from the Input / ``input_shape=``).

        Raises:
            AttributeError: if the model has no input shape yet.
        """
        if self._input_layer is None:
            raise AttributeError("The model '%s' has no defined input shape yet" % self.name)
        return (None,) + self._input_layer.shape[1:]

    @input_shape.setter
    def input_shape(self, value):  # set by the graph; the InputLayer is the truth here
        pass

    @property
    def output_shape(self):
        """The output shape, batch dimension ``None``.

        Raises:
            AttributeError: if the model is not built yet.
        """
        if not self.built:
            raise AttributeError("The model '%s' has not been built yet" % self.name)
        return self._outputs[0].shape

    @output_shape.setter
    def output_shape(self, value):
        pass

    def _declared_input_shape(self):
        return None if self._input_layer is None else tuple(self._input_layer.shape[1:])

    def _input_layer_name(self):
        return self._stack[0].name if self._stack else self.name

    def compute_output_shape(self, input_shape):
        if not self.built:  # a nested Sequential without an input learns it from its caller
            self.build((None,) + tuple(input_shape[1:]))
        return super().compute_output_shape(input_shape)

    def get_config(self):
        layers = []
        if self._input_layer is not None:
            layers.append(layers_module.serialize(self._input_layer))
        layers += [layers_module.serialize(l) for l in self._stack]
        config = {"name": self.name, "trainable": self.trainable, "layers": layers}
        if self._input_layer is not None:
            config["build_input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config.get("layers", []):
            model.add(layers_module.deserialize(layer_config, custom_objects))
        shape = config.get("build_input_shape")
        if shape is not None and not model.built and model._stack:
            model.build(shape)
        return model

    def __repr__(self):
        return "<Sequential name=%s, built=%s, layers=%d>" % (self.name, self.built,
                                                              len(self._stack))


layers_module.register(Sequential)
