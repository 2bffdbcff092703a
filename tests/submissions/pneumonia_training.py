"""pneumonia_training: wrong and right answers for `train_one_epoch`, `evaluate`, `train_resnet` and `grad_cam`.

Every answer is checked on tiny problems before any real training, so the cases grade only the
notebook up to their cell's last check (`stop_after`): seconds each. `train_resnet` (the training
loop `fit`) and `grad_cam` cases stop after the last Grad-CAM check, which comes before the
baseline's and ResNet18's training. The reference and the untouched release are graded up to there
too (test_grading.GRADED_UP_TO); the cheating corpus's honest bars are graded whole. fit's checks run
fit with the task's own `train_one_epoch` and `evaluate` in place of the student's, so a mistake in
those costs their own points only: three such mistakes are graded up to fit's checks to show it.
"""

from coursekit.config import load_course
from coursekit.notebooks import read, reference_answers

from . import Case, mistake

REF = reference_answers(read(load_course().assignments["pneumonia_training"].notebook("source")))
EPOCH, EVALUATE, FIT, CAM = REF["train_one_epoch"], REF["evaluate"], REF["train_resnet"], REF["grad_cam"]

AFTER_EPOCH = "test_train_one_epoch_updates"
AFTER_EVALUATE = "test_evaluate_leaves_model_unchanged"
AFTER_CAM = "test_grad_cam_cleanup"   # fit's checks come before Grad-CAM's


def epoch(name, *edits, stop_after=AFTER_EPOCH):
    return Case(name, "train_one_epoch", mistake(EPOCH, *edits), right=False, stop_after=stop_after)


def evaluation(name, *edits, stop_after=AFTER_EVALUATE):
    return Case(name, "evaluate", mistake(EVALUATE, *edits), right=False, stop_after=stop_after)


def fitting(name, *edits):
    return Case(name, "train_resnet", mistake(FIT, *edits), right=False, stop_after=AFTER_CAM)


def cam(name, *edits):
    return Case(name, "grad_cam", mistake(CAM, *edits), right=False, stop_after=AFTER_CAM)


MOVE = "images, labels = images.to(device), labels.to(device)\n"
ACCUMULATE = ("total_loss += loss.item() * labels.shape[0]\n"
              "        n_samples += labels.shape[0]\n"
              "    return total_loss / n_samples")
COLLECT = "probabilities.append(logits.softmax(dim=1)[:, 1].cpu())"
WEIGHTED_SUM = 'maps = F.relu((weights * kept["activations"]).sum(dim=1, keepdim=True))'

CASES = [
    # ---- train_one_epoch: mistakes
    epoch("epoch_no_zero_grad", ("        optimizer.zero_grad()\n", "")),
    epoch("epoch_zero_grad_before_step",
          ("        optimizer.zero_grad()\n", ""),
          ("loss.backward()\n", "loss.backward()\n        optimizer.zero_grad()\n")),
    epoch("epoch_mean_of_batch_means",
          ("total_loss, n_samples = 0.0, 0", "batch_losses = []"),
          (ACCUMULATE, "batch_losses.append(loss.item())\n    return sum(batch_losses) / len(batch_losses)")),
    epoch("epoch_divides_by_full_batches",
          ("return total_loss / n_samples", "return total_loss / (len(loader) * loader.batch_size)")),
    epoch("epoch_returns_last_batch_loss",
          (ACCUMULATE, "pass\n    return loss.item()")),
    # Graded up to fit's checks, which run fit with the task's own train_one_epoch and evaluate: these
    # mistakes passed through fit and cost its points too, until fit's checks stopped using the student's.
    epoch("epoch_returns_tensor",
          ("total_loss += loss.item() * labels.shape[0]", "total_loss += loss.detach() * labels.shape[0]"),
          stop_after=AFTER_CAM),
    epoch("epoch_no_train_mode", ("    model.train()\n", ""), stop_after=AFTER_CAM),
    epoch("epoch_not_moved_to_device", ("        " + MOVE, "")),
    epoch("epoch_ignores_criterion",
          ("loss = criterion(model(images), labels)", "loss = F.cross_entropy(model(images), labels)")),
    # Gradient clipping: not a step of the task's loop, and it changes every step whose gradient is large
    # (red team, 2026-12-06: the tiny problem's gradients were too small to show it).
    epoch("epoch_grad_clipping", ("        loss.backward()\n",
                                  "        loss.backward()\n        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n")),
    # ---- evaluate: mistakes
    evaluation("evaluate_auc_from_hard_labels",
               ("auc = float(roc_auc_score(labels, probabilities))",
                "auc = float(roc_auc_score(labels, probabilities > 0.5))")),
    evaluation("evaluate_probability_of_class_0", (COLLECT, "probabilities.append(logits.softmax(dim=1)[:, 0].cpu())")),
    evaluation("evaluate_sigmoid_of_one_logit", (COLLECT, "probabilities.append(logits[:, 1].sigmoid().cpu())")),
    evaluation("evaluate_no_eval_mode", ("    model.eval()\n", "")),
    evaluation("evaluate_no_no_grad",
               ("    with torch.no_grad():\n", "    if True:\n"),
               (COLLECT, "probabilities.append(logits.softmax(dim=1)[:, 1].detach().cpu())")),
    evaluation("evaluate_mean_of_batch_aucs",
               ("probabilities, targets = [], []", "probabilities, targets, batch_aucs = [], [], []"),
               ("targets.append(labels.cpu())",
                "targets.append(labels.cpu())\n"
                "            batch_aucs.append(roc_auc_score(targets[-1].numpy(), probabilities[-1].numpy()))"),
               ("auc = float(roc_auc_score(labels, probabilities))", "auc = float(np.mean(batch_aucs))")),
    evaluation("evaluate_mean_of_batch_accuracies",
               ("probabilities, targets = [], []", "probabilities, targets, batch_accuracies = [], [], []"),
               ("targets.append(labels.cpu())",
                "targets.append(labels.cpu())\n"
                "            batch_accuracies.append(((probabilities[-1] > 0.5) == targets[-1]).float().mean().item())"),
               ("accuracy = float(((probabilities > 0.5) == labels).mean())",
                "accuracy = float(np.mean(batch_accuracies))")),
    evaluation("evaluate_accuracy_in_percent",       # graded up to fit's checks, as epoch_no_train_mode
               ("accuracy = float(((probabilities > 0.5) == labels).mean())",
                "accuracy = float(100 * ((probabilities > 0.5) == labels).mean())"), stop_after=AFTER_CAM),
    evaluation("evaluate_not_moved_to_device", ("logits = model(images.to(device))", "logits = model(images)")),
    # Python lists where the task asks for NumPy arrays (red team, 2026-12-06).
    evaluation("evaluate_returns_lists", ('"probabilities": probabilities, "labels": labels}',
                                          '"probabilities": probabilities.tolist(), "labels": labels.tolist()}')),
    # Gradient tracking switched off for good instead of for the block: every later training step fails.
    evaluation("evaluate_grad_switched_off", ("    with torch.no_grad():\n        for images", "    torch.set_grad_enabled(False)\n    if True:\n        for images")),
    # ---- train_resnet (the training loop fit): mistakes
    fitting("fit_state_dict_not_copied",   # references to the live tensors: the last epoch's weights
            ('best_state = val["auc"], copy.deepcopy(model.state_dict())', 'best_state = val["auc"], model.state_dict()')),
    fitting("fit_best_weights_not_loaded", ("    model.load_state_dict(best_state)\n", "")),
    fitting("fit_trains_on_validation", ("train_one_epoch(model, train_loader,", "train_one_epoch(model, val_loader,")),
    # Found by make mutants: the set-up the task states, each part left out (a constant learning rate;
    # AdamW's default weight decay, 0.01).
    fitting("fit_without_one_cycle", ("    one_cycle(optimizer, lr, epochs, len(train_loader))\n", "")),
    fitting("fit_default_weight_decay", (", weight_decay=1e-4)", ")")),
    # The stated loss is nn.CrossEntropyLoss(); the history holds the epoch's own figures (red team, 2026-12-06).
    fitting("fit_label_smoothing", ("criterion = nn.CrossEntropyLoss()", "criterion = nn.CrossEntropyLoss(label_smoothing=0.1)")),
    fitting("fit_history_accuracy_is_auc", ('"val_accuracy": val["accuracy"]', '"val_accuracy": val["auc"]')),
    # The best epoch by validation accuracy, not AUC: on the tiny problems both peak together (red team,
    # 2026-12-06); the check's made-up evaluate tells them apart.
    fitting("fit_best_by_accuracy", ('if val["auc"] > best_auc:\n            best_auc, best_state = val["auc"],',
                                     'if val["accuracy"] > best_auc:\n            best_auc, best_state = val["accuracy"],')),
    # ---- grad_cam: mistakes
    cam("cam_no_relu", (WEIGHTED_SUM, WEIGHTED_SUM.replace("F.relu(", "(", 1))),
    cam("cam_predicted_class",
        ("classes = torch.as_tensor(target_classes, device=logits.device).long().view(-1, 1)",
         "classes = logits.argmax(dim=1).view(-1, 1)")),
    cam("cam_weights_not_pooled", ('weights = kept["gradients"].mean(dim=(2, 3), keepdim=True)', 'weights = kept["gradients"]')),
    cam("cam_hooks_left_registered", ("        for handle in handles:\n            handle.remove()\n", "        pass\n")),
    # Hooks removed after the backward pass, but not in `finally:`: a pass that fails leaves them behind.
    cam("cam_hooks_removed_without_finally", ("    try:\n        logits = model(images)", "    if True:\n        logits = model(images)"),
        ("    finally:\n        for handle in handles:", "    if True:\n        for handle in handles:")),
    # Written from the contract (maps of the images' own H×W): height and width swapped when
    # upsampling, which square images cannot tell apart.
    cam("cam_upsampled_to_width_by_height", ("size=images.shape[-2:]", "size=(images.shape[-1], images.shape[-2])")),
    cam("cam_softmax_score", ("logits.gather(1, classes).sum().backward()",
                              "logits.softmax(dim=1).gather(1, classes).sum().backward()")),
    # ---- right answers written differently
    Case("epoch_counts_dataset_and_set_to_none", "train_one_epoch", '''
def train_one_epoch(model, loader, criterion, optimizer, device):
    """Train for one epoch; return the mean loss per sample."""
    model.train()
    running = 0.0
    for batch in loader:
        x, y = (t.to(device) for t in batch)
        logits = model(x)
        loss = criterion(logits, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.item() * x.size(0)
    return running / len(loader.dataset)
'''.strip(), right=True, stop_after=AFTER_EPOCH),
    # The accuracy as a float32 mean of the predicted classes: 3e-8 from the float64 one (it lost the
    # metrics check's points while that check asked for 1e-9).
    Case("evaluate_float32_accuracy", "evaluate", mistake(EVALUATE, (
        "    accuracy = float(((probabilities > 0.5) == labels).mean())",
        "    accuracy = (torch.from_numpy(probabilities > 0.5).long() == torch.from_numpy(labels)).float().mean().item()")),
         right=True, stop_after=AFTER_EVALUATE),
    Case("evaluate_argmax_numpy_inference_mode", "evaluate", '''
from sklearn.metrics import accuracy_score


def evaluate(model, loader, device):
    model.eval()
    all_probs, all_preds, all_labels = [], [], []
    with torch.inference_mode():
        for x, y in loader:
            out = model(x.to(device))
            all_probs.append(torch.softmax(out, dim=1)[:, 1].cpu().numpy())
            all_preds.append(out.argmax(dim=1).cpu().numpy())
            all_labels.append(y.cpu().numpy())
    probs, preds, labels = map(np.concatenate, (all_probs, all_preds, all_labels))
    return {"accuracy": float(accuracy_score(labels, preds)), "auc": float(roc_auc_score(labels, probs)),
            "probabilities": probs, "labels": labels}
'''.strip(), right=True, stop_after=AFTER_EVALUATE),
    Case("fit_loop_from_zero_and_cloned_state", "train_resnet", '''
def fit(model, train_loader, val_loader, epochs, lr, device, desc="training"):
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    one_cycle(opt, lr, epochs, len(train_loader))
    history, best = [], None
    for epoch in tqdm(range(epochs), desc=desc):
        t0 = time.perf_counter()
        loss = train_one_epoch(model, train_loader, crit, opt, device)
        metrics = evaluate(model, val_loader, device)
        history.append(dict(epoch=epoch + 1, train_loss=loss, val_accuracy=metrics["accuracy"],
                            val_auc=metrics["auc"], seconds=time.perf_counter() - t0))
        if best is None or metrics["auc"] > best[0]:
            best = (metrics["auc"], {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    return history
'''.strip(), right=True, stop_after=AFTER_CAM),
    # Also evaluates the training loader every epoch (an extra key in the history): the checks that replace
    # evaluate on the validation loader leave every other call to the student's own.
    Case("fit_also_evaluates_training_set", "train_resnet", '''
def fit(model, train_loader, val_loader, epochs, lr, device, desc="training"):
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    one_cycle(optimizer, lr, epochs, len(train_loader))
    history, best_auc, best_state = [], float("-inf"), None
    for epoch in tqdm(range(1, epochs + 1), desc=desc, unit="epoch"):
        start = time.perf_counter()
        train_loss = train_one_epoch(model, train_loader, criterion, optimizer, device)
        on_train = evaluate(model, train_loader, device)
        val = evaluate(model, val_loader, device)
        history.append({"epoch": epoch, "train_loss": train_loss, "train_accuracy": on_train["accuracy"],
                        "val_accuracy": val["accuracy"], "val_auc": val["auc"],
                        "seconds": time.perf_counter() - start})
        if val["auc"] > best_auc:
            best_auc = val["auc"]
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return history
'''.strip(), right=True, stop_after=AFTER_CAM),
    Case("cam_tensor_hook_and_autograd_grad", "grad_cam", '''
def grad_cam(model, layer, images, target_classes):
    model.eval()
    saved = []
    handle = layer.register_forward_hook(lambda module, inputs, output: saved.append(output))
    try:
        out = model(images)
    finally:
        handle.remove()
    activations = saved[-1]
    idx = torch.tensor([int(c) for c in target_classes], device=out.device)
    score = out[torch.arange(len(idx), device=out.device), idx].sum()
    grads, = torch.autograd.grad(score, activations)
    alpha = grads.mean(dim=(-2, -1))
    cam = torch.einsum("nk,nkhw->nhw", alpha, activations.detach()).clamp(min=0)
    cam = F.interpolate(cam.unsqueeze(1), size=tuple(images.shape[-2:]), mode="bilinear",
                        align_corners=False).squeeze(1)
    flat = cam.flatten(1)
    low = flat.min(dim=1).values
    high = (flat - low[:, None]).max(dim=1).values
    cam = (cam - low[:, None, None]) / (high[:, None, None] + 1e-7)
    return cam.detach().cpu()
'''.strip(), right=True, stop_after=AFTER_CAM),
]
