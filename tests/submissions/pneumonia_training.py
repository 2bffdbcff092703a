"""pneumonia_training: wrong and right answers for `train_one_epoch`, `evaluate` and `train_resnet`.

`train_one_epoch` and `evaluate` are checked on a tiny problem before any training, so their cases
grade only the notebook up to their last test cell (`stop_after`): seconds each. The `train_resnet`
cases are graded whole, in the reference's batch, so they train beside it on the other worker
instead of in a batch of their own; the wrong one is cheap (a copy-paste slip that leaves the
ResNet untrained), the right one trains for real.
"""

from coursekit.config import load_course
from coursekit.notebooks import read, reference_answers

from . import Case, mistake

REF = reference_answers(read(load_course().assignments["pneumonia_training"].notebook("source")))
EPOCH, EVALUATE, TRAIN = REF["train_one_epoch"], REF["evaluate"], REF["train_resnet"]

AFTER_EPOCH = "test_train_one_epoch_updates"
AFTER_EVALUATE = "test_evaluate_leaves_model_unchanged"


def epoch(name, *edits):
    return Case(name, "train_one_epoch", mistake(EPOCH, *edits), right=False, stop_after=AFTER_EPOCH)


def evaluation(name, *edits):
    return Case(name, "evaluate", mistake(EVALUATE, *edits), right=False, stop_after=AFTER_EVALUATE)


def training(name, *edits):
    return Case(name, "train_resnet", mistake(TRAIN, *edits), right=False)


MOVE = "images, labels = images.to(device), labels.to(device)\n"
ACCUMULATE = ("total_loss += loss.item() * labels.shape[0]\n"
              "        n_samples += labels.shape[0]\n"
              "    return total_loss / n_samples")
COLLECT = "probabilities.append(logits.softmax(dim=1)[:, 1].cpu())"

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
    epoch("epoch_returns_tensor",
          ("total_loss += loss.item() * labels.shape[0]", "total_loss += loss.detach() * labels.shape[0]")),
    epoch("epoch_no_train_mode", ("    model.train()\n", "")),
    epoch("epoch_not_moved_to_device", ("        " + MOVE, "")),
    epoch("epoch_ignores_criterion",
          ("loss = criterion(model(images), labels)", "loss = F.cross_entropy(model(images), labels)")),
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
    evaluation("evaluate_accuracy_in_percent",
               ("accuracy = float(((probabilities > 0.5) == labels).mean())",
                "accuracy = float(100 * ((probabilities > 0.5) == labels).mean())")),
    evaluation("evaluate_not_moved_to_device", ("logits = model(images.to(device))", "logits = model(images)")),
    # ---- train_resnet: mistakes (cheap: no real ResNet training)
    training("resnet_trains_the_baseline",   # copy-paste from the baseline cell, one name not changed
             ("train_loss = train_one_epoch(resnet,", "train_loss = train_one_epoch(baseline,")),
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
    Case("resnet_function_and_cloned_state", "train_resnet", '''
def fit(model, epochs, lr):
    """Train `model` on train_loader, keep the best epoch by validation AUC; return its history."""
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    one_cycle(optimizer, lr, epochs, len(train_loader))
    history, best = [], None
    for epoch in tqdm(range(epochs), desc="ResNet18"):
        t0 = time.perf_counter()
        loss = train_one_epoch(model, train_loader, criterion, optimizer, device)
        metrics = evaluate(model, val_loader, device)
        history.append(dict(epoch=epoch + 1, train_loss=loss, val_accuracy=metrics["accuracy"],
                            val_auc=metrics["auc"], seconds=time.perf_counter() - t0))
        if best is None or metrics["auc"] > best[0]:
            best = (metrics["auc"], {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    return history


resnet = adapt_resnet18().to(device)
resnet_history = fit(resnet, RESNET_EPOCHS, RESNET_LR)
'''.strip(), right=True),
]
