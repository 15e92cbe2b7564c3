"""The regularization terms of a model's training step, collected once per plan.

``Penalties(program)`` lists, from the plan's layers, the weights with a regularizer, the
layer calls with an activity regularizer and the weights with a constraint. The trainer then
adds ``loss_and_gradients()`` (weight penalties, their gradients added in place to the
gradient arrays the optimizer reads, plus the activity penalties of the last forward, whose
gradients the layers' backward already added) to the batch loss, and calls ``constrain()``
after the optimizer step, as Keras' optimizer does. A model without any of them pays one
truth test per step.
"""

__all__ = ["Penalties"]


class Penalties:
    """Regularized weights, activity-regularized calls and constrained weights of a plan.

    Args:
        program: a ``training.plan.Program``.
    """

    def __init__(self, program):
        layers, seen = [], set()
        for step in program.steps:
            for layer in step.layers:
                if id(layer) not in seen:
                    seen.add(id(layer))
                    layers.append(layer)
        self._weights = [(layer, v) for layer in layers for v in layer.weights
                         if v.regularizer is not None]
        self._activity = [(node.layer, node.slot) for step in program.steps
                          for node in step.nodes if node.layer.activity_regularizer is not None]
        self._constrained = [v for layer in layers for v in layer.weights
                             if v.constraint is not None]
        self.active = bool(self._weights or self._activity)
        self.constrains = bool(self._constrained)

    def loss(self):
        """The penalties of the trainable regularized weights plus the activity penalties
        of the latest forward (what an evaluation step adds to the loss)."""
        total = 0.0
        for _, v in self._weights:
            if v.trainable:
                total += v.regularizer(v.value)
        for layer, slot in self._activity:
            total += layer.activity_loss(slot)
        return total

    def loss_and_gradients(self):
        """As ``loss``, and add each weight penalty's gradient to the weight's gradient
        array (run after the plan's backward, before the optimizer)."""
        total = 0.0
        for layer, v in self._weights:
            if v.trainable:
                g = layer.grad_buffer(v)
                total += v.regularizer.add_gradient(v.value, g, out=g)
        for layer, slot in self._activity:
            total += layer.activity_loss(slot)
        return total

    def constrain(self):
        """Project every trainable constrained weight in place (after an optimizer step)."""
        for v in self._constrained:
            if v.trainable:
                v.constraint.apply(v.value)
