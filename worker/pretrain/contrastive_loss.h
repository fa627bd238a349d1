// The contrastive loss of the tiny CLIP: CLIP's symmetric InfoNCE, with every pair of the
// same class counted as a positive. Captions here describe a class, not an image, so two
// images of one class with different captions are both correct pairs; plain InfoNCE would
// push each image away from its classmates' captions (with 10 classes, most of a batch).
// Pure function; thread-safe.
#pragma once

#include <torch/torch.h>

namespace atp::pretrain {

// logits [N_img, N_txt] (already scaled), image_classes [N_img], text_classes [N_txt] (int64).
// Image -> text: cross-entropy of softmax over the texts against the uniform distribution over
// the texts of the image's class; text -> image likewise over the images; the loss is the mean
// of the two directions (each averaged over its rows). Every image's class must have a text
// and every text's class an image. With one text per image and distinct classes this is
// CLIP's loss exactly.
torch::Tensor MultiPositiveClipLoss(const torch::Tensor& logits, const torch::Tensor& image_classes,
                                    const torch::Tensor& text_classes);

}  // namespace atp::pretrain
