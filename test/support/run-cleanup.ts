/**
 * @module test/support/run-cleanup
 * What a whole `bun test` run removes once every file has run (bunfig.toml preloads this file,
 * so its afterAll is the run's, not one file's): the test runner fires no process exit event,
 * so a handler there would never run and each run would leave its copy of the binary in the
 * temp dir.
 */
import { afterAll } from "bun:test";
import { removeCurrentDebs } from "../system/packages.ts";
import { removeBinaryCopies } from "./binary.ts";

afterAll(removeBinaryCopies);
afterAll(removeCurrentDebs);
