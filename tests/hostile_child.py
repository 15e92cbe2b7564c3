"""Child process for the hostile-file tests: load model files under a memory limit.

Reads a JSON list of jobs on stdin, ``[{"path": ..., "kind": "model" | "weights",
"template": <a fastcnn .keras path, for "weights">}, ...]``, sets RLIMIT_AS to
``argv[1]`` bytes, loads each file and prints one JSON line per job:
``{"path": ..., "outcome": "ok" | <exception class name>, "message": ...}``. A crash or a hang
shows up in the parent as a missing line, a signal or a timeout.
"""
import json
import resource
import sys


def main():
    limit = int(sys.argv[1])
    jobs = json.loads(sys.stdin.read())
    import fastcnn  # imported before the limit: the import itself maps libraries
    import fastcnn.onnx  # noqa: F401
    try:  # the ONNX reader's dependency, loaded before the limit too
        import onnx  # noqa: F401
    except ImportError:
        pass
    from fastcnn import models
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    templates = {}
    for job in jobs:
        try:
            if job["kind"] == "model":
                models.load_model(job["path"])
            elif job["kind"] == "onnx":
                fastcnn.onnx.load_model(job["path"])
            else:
                tpl = job["template"]
                if tpl not in templates:
                    templates[tpl] = models.load_model(tpl, compile=False)
                templates[tpl].load_weights(job["path"])
            outcome, message = "ok", ""
        except Exception as e:  # the parent decides which exceptions are acceptable
            outcome, message = type(e).__name__, str(e)
        print(json.dumps({"path": job["path"], "outcome": outcome, "message": message[:2000]}),
              flush=True)


if __name__ == "__main__":
    main()
