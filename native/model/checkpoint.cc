#include "model/checkpoint.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/custom_class.h>

namespace medgr2::model {

namespace {

struct LayerFnHolder : torch::CustomClassHolder {
  explicit LayerFnHolder(LayerFn f) : fn(std::move(f)) {}
  LayerFn fn;
};

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const LayerFn* fn) {
    ctx->saved_data["fn"] = c10::IValue::make_capsule(c10::make_intrusive<LayerFnHolder>(*fn));
    ctx->save_for_backward({x});
    at::NoGradGuard no_grad;
    return (*fn)(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto holder = c10::static_intrusive_pointer_cast<LayerFnHolder>(ctx->saved_data["fn"].toCapsule());
    at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor y;
    {
      at::AutoGradMode grad_on(true);
      y = holder->fn(x);
    }
    torch::autograd::backward({y}, {grad_out[0]});
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

at::Tensor CheckpointedCall(const LayerFn& fn, const at::Tensor& x, bool trainable_inside) {
  if (!at::GradMode::is_enabled()) return fn(x);
  // An autograd Function's output requires grad only when an input does: give it one (a leaf whose
  // gradient is dropped), as PEFT's enable_input_require_grads does for torch's checkpoint.
  if (!x.requires_grad() && trainable_inside) return CheckpointFunction::apply(x.detach().requires_grad_(true), &fn);
  return CheckpointFunction::apply(x, &fn);
}

}  // namespace medgr2::model
