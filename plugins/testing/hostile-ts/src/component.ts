/** The module jco componentizes (QuickJS). */
import { exportPlugin } from '@orderpipe/plugin-sdk/component';

import { hostile } from './plugin.js';

export const { describe, decide } = exportPlugin(hostile);
