import { describe, expect, test } from "bun:test";
import { stepSeconds } from "./plain-progress.ts";

const BUILD = `#0 building with "default" instance using docker driver

#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 62B done
#1 DONE 0.0s

#2 [internal] load build context
#2 transferring context: 120.0MB 2.1s
#3 [internal] load .dockerignore
#3 DONE 0.1s
#2 transferring context: 215.0MB 3.5s done
#2 DONE 3.6s

#4 [1/1] COPY . /ctx/
#4 DONE 1.2s

#5 exporting to client tarball
#5 sending tarball
#5 sending tarball 2.0s done
#5 DONE 2.1s
`;

describe("stepSeconds", () => {
  test("takes the upload and the export from their DONE lines, whatever is interleaved", () => {
    expect(stepSeconds(BUILD)).toEqual({ upload: 3.6, export: 2.1 });
  });

  test("a step that never finished, or is missing, is NaN rather than zero", () => {
    const unfinished = BUILD.replace("#5 DONE 2.1s\n", "#5 ERROR: write: broken pipe\n");
    expect(stepSeconds(unfinished).export).toBeNaN();
    expect(stepSeconds("#1 [1/1] COPY . /ctx/\n#1 DONE 1.0s\n")).toEqual({ upload: Number.NaN, export: Number.NaN });
  });

  test("indented lines (a client prefixing its output) still count", () => {
    expect(stepSeconds(BUILD.replace(/^#/gm, "  #")).upload).toBe(3.6);
  });
});
